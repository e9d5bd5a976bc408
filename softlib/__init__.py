"""softlib: the shared code of the book "Beyond the softmax".

Small modules with one job each: ``data`` (MNIST, Fashion-MNIST, CIFAR-10,
ImageNet on disk), ``models`` (the papers' networks), ``train`` and ``zoo``
(training with a content-addressed cache), ``attacks`` and ``ood`` (the sets every
chapter uses), ``detectors`` and ``metrics`` (chapter 03), ``losses`` (chapter 05),
``softmax`` (chapter 01), ``paper`` (the papers' reference numbers).
"""

__version__ = "0.1.0"
