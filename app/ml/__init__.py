"""scikit-learn faces of the classifiers: for fitting, batch evaluation and comparison, not the hot path."""
