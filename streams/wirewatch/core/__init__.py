"""The domain core: parsing, terms, story clustering, windows and spike detection. Plain Python: no Faust, no Kafka."""
