"""The package version, in a module of its own: modules that record it
(``saving``) import it without importing the whole package."""
__version__ = "0.1.0"
