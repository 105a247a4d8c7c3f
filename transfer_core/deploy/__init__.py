"""Using a trained model elsewhere: prediction, export formats and the model card."""
