"""The weekly council's stages."""
