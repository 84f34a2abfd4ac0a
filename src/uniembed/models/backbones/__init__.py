"""Backbone families (one file each) and their registry."""
from .base import Backbone, DecodedItem, VisualInput, backbone_for, register_backbone, registered_model_types

__all__ = ["Backbone", "DecodedItem", "VisualInput", "backbone_for", "register_backbone", "registered_model_types"]
