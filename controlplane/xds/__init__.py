"""The xDS vocabulary: resource type URLs, their ADS order, and the wire encoding of responses.

Imported by translate, cache and server; imports nothing else of ours."""
