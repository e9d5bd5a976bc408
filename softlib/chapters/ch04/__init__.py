"""Chapter 04's analysis (see the book's chapter 04 and ``softlib.chapters``)."""
