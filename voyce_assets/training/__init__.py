"""Training (notebook 05): the training dataset and the model registry (MLflow)."""
