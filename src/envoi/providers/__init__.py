"""Providers: named, configured instances of a channel's plugins (an SMTP relay, an SMSC, APNs...), one default
and an optional backup for each channel, from the environment, a settings file or the API."""
