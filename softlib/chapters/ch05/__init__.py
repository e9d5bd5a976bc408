"""Chapter 05's analysis (see the book's chapter 05 and ``softlib.chapters``)."""
