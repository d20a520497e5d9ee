"""The deep family: a batched torch front end, one shared chunk trainer, and four CNNs.

``DeepSystem`` (``musicbench.systems.deep.system``) is the registered family ``deep``; the
presets ``cnn1d``, ``cnn2d``, ``samplecnn`` and ``harmoniccnn`` pick its ``model``.
"""
