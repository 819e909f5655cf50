"""tinyvid: the library under the course.

Everything reusable lives here once; the notebooks derive each piece small and
inline, check it equals the version here, then use this one.
"""

__version__ = "0.1.0"
