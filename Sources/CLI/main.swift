print("dmirror")
