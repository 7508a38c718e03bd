"""Typical wrong answers to exercise 01, and the correct ones, for testing the grader's checks.

Each mutant makes exactly one mistake a learner makes; ``MUTANTS`` lists them with the check they
must fail and a word the hint must contain (so the hint names the right mistake).
"""
