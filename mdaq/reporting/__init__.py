"""The leaderboard: tables, figures and the HTML page (stage `leaderboard`)."""
