"""
earshot's proxy: the aiohttp application, relay, REST exchange, redaction, logging,
settings and command line. Depends on `protocol`, never the other way round.
"""
