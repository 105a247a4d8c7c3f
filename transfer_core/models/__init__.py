"""Networks: the backbone registry and catalogues, the transfer model, and the metadata that travels with it."""
