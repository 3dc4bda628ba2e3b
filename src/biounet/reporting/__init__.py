"""What a person reads: the run log, learning-curve plots, score tables and the HTML page."""
