"""Stripe: billing signals (failed payments, overdue invoices) and subscription ARR."""
