"""The strategy engine: pattern signals, model scores and sentiment, joined into suggestions."""
