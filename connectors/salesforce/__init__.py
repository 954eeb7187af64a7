"""Salesforce connector: Source (Accounts, Contracts, Opportunities, Cases, activities, Contacts)
and ScoreSink (score fields written back with sObject Collections)."""
