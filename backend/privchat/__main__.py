"""`python -m privchat …` runs the same CLI as the `privchat` command."""

from privchat.commands.cli import main

main()
