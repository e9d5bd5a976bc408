"""Chapter 03's analysis (see the book's chapter 03 and ``softlib.chapters``)."""
