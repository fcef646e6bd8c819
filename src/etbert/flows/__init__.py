"""Flow assembly: decoded packets into bidirectional flow records (the flow meter)."""
