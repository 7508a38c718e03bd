"""Support code for single chapters: logic a chapter needs that is longer than a notebook cell should be.

Each module names the chapter it serves; the chapters call it, the tests prove it.
"""
