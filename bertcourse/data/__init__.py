"""Data for the course: the toy language, real corpora, datasets and collators."""
