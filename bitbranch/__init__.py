"""bitbranch: the product's command-line front end (the `bitbranch` console script)."""
