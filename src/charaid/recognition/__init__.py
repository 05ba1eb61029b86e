"""The app that composes a detector, an embedder and a gallery into answers: ``Recognizer``,
whole-picture recognition, which model a gallery compares in (``spaces``), and drawing results."""
