"""availmon: second-by-second SLA availability monitoring for email-sending platforms."""

__version__ = "0.1.0"
