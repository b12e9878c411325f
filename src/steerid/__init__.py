"""steerid: is this steering vector really the direction, or one of many that do the same?"""

__version__ = "0.1.0"
