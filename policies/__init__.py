"""llm-edge's CrossGuard policy pack: rules in importable modules, the pack built by __main__.py.

The pack stands on its own (`pulumi policy publish` uploads this directory only), so it imports
nothing from components/: the few names it shares with the program (the preview label, the
image-pin rule) are written here again, and tests/policies/test_agrees_with_program.py proves
that both copies agree.
"""
