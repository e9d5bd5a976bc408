"""Chapter 06's analysis (see the book's chapter 06 and ``softlib.chapters``)."""
