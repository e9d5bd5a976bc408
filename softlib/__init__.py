"""softlib: the shared code of the book "Beyond the softmax".

Three places, named by what they hold:

- **the core** (``softlib.*``, ``softlib.paper``): reusable by any chapter. ``data`` (MNIST,
  Fashion-MNIST, CIFAR-10, ImageNet on disk), ``models`` (the papers' networks, the
  :class:`~softlib.models.TrainedModel` handle, the one batched inference :func:`~softlib.models.predict`),
  ``train`` and ``zoo`` (training with a content-addressed cache), ``cache``, ``runtime``
  (device, seeds), ``paths`` (repository and results folders), ``validate``, ``profiles``;
  ``attacks``, ``ood`` and ``sets`` (the evaluation sets), ``detectors``, ``diffscore``,
  ``adaptive`` and ``metrics``; ``stats``, ``resample``, ``tables``, ``losses``, ``imagenet``,
  ``plots``; ``claims`` (claims as data, verdict rules); ``paper`` (the papers' numbers).
- **the chapters** (``softlib.chapters.chNN``): one chapter's analysis, a module per job
  (e.g. ``ch04.settings``, ``ch04.runner``, ``ch04.aggregation``, ``ch04.correlations``,
  ``ch04.figures``) and its ``claims``. They build on the core and never on the tooling,
  except :func:`softlib.tooling.record.record` in the notebooks.
- **the tooling** (``softlib.tooling``): the build. ``notebooks`` (runner, jupytext sync),
  ``record``, ``claimspage``, ``repro``, ``plan`` and ``prebuild`` (Dask), ``kit``.

The core never imports the chapters or the tooling (``tests/test_layout.py``).
"""

__version__ = "0.1.0"
