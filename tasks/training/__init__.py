"""Training the models the realtime engine serves (flows/training.py runs these)."""
