"""Typical wrong answers to each exercise, and the correct ones, for testing the grader's checks.

``exNN_<name>.py`` holds ``CORRECT`` (function name -> a right answer) and ``MUTANTS`` (name ->
(function name, a wrong answer that makes exactly one typical mistake, a phrase its hint must contain)).
"""
