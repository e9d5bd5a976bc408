"""Chapter 02's analysis (see the book's chapter 02 and ``softlib.chapters``)."""
