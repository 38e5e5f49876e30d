"""The households' rights on the command line (``.cli``): contacts, opt-out, opt-in, erasure, access."""
