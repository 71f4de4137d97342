"""What crosses between the host and the sandbox: the wire, the result document, bounded JSON.

Both sides import this package and nothing else of each other.
"""
