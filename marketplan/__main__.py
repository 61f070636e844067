from marketplan.cli import main

main()
