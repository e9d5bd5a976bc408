"""Chapter 01's analysis (see the book's chapter 01 and ``softlib.chapters``)."""
