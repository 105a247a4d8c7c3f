"""What a trained model tells you: metrics, Grad-CAM, embedding map, health check, shoot-out, comparison."""
