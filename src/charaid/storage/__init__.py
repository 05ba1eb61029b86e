"""charaid's files: the gallery, the face store and its ANN index, the sort journal, and the
SQLite schema migrations they share."""
