"""`python -m zerog` runs the command line."""

from zerog.cli import main

if __name__ == "__main__":
    main()
