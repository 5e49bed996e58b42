"""Who may call Envoi: API keys (operators and security groups come later)."""
