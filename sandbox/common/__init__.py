"""What every vendor sandbox shares: faults, request stats, the synthetic data they seed from,
and webhook delivery with duplication and reordering faults."""
