"""optimum-cli plugin."""
