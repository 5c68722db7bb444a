"""truepipe: a sales CRM whose pipeline tells the truth."""

__version__ = "0.1.0"
