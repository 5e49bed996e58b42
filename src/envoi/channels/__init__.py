"""Channels take rendered messages and return one outcome each. They import nothing of the domain."""
