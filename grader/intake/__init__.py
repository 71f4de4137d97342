"""Submissions in (host side): folders, zips, LMS bulk downloads and notebooks, read without trust."""
