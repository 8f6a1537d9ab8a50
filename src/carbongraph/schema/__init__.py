"""Strawberry types, inputs, enums and the assembled federation schema."""
