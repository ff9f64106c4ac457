"""llm-edge's CrossGuard policy pack: rules in importable modules, the pack built by __main__.py."""
