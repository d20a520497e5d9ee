"""Self-supervised pretraining of deep backbones: the run (``run``), its command line
(``command``) and the encoders it makes (``encoder``). Nothing is imported here, so the
command line is built without torch."""
