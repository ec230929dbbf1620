"""The dashboard's static files (static/): HTML, ES modules and CSS, served as they are."""
