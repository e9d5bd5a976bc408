"""The papers' reference numbers, encoded once as data.

One module per paper (file names in ``../shared/papers/``), each value traceable
to its table, figure or section there:

- :mod:`softlib.paper.softmax_hinders`: 000, "How the Softmax Activation Hinders..." (tables 2-3, accuracies)
- :mod:`softlib.paper.introspection`: 002, Aigrain & Detyniecki (table 2, logit statistics)
- :mod:`softlib.paper.misleading_softmax`: 001/004, Ozbulak et al. (figures 1-2, reference activations)
- :mod:`softlib.paper.detection_vs_robustness`: 003, Lemesle & Vernade (tables 2-3)

Notebooks import values from here and never type a paper's number themselves.
"""
