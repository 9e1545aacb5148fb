"""Measuring a sensor's detection capability on recordings with ground truth (`cobotguard capability`)."""
