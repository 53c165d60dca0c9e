"""Deploy and emulation helpers: the image's model bake step and the local Lambda runtime driver (rie;
``python -m infra invoke``)."""
